"""Schedules (EventBridge Scheduler): rate, cron and one-time schedules that fire once, on time,
with one leader among any number of processes."""

from fanstack.schedules.schedule import Schedule, Schedules, rule_schedule

__all__ = ["Schedule", "Schedules", "rule_schedule"]
