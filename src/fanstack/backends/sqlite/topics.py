"""Topics and subscriptions (the `topics` and `subscriptions` tables), compiled into routes."""

from __future__ import annotations

from fanstack.backends.sqlite.catalog import Catalog
from fanstack.backends.sqlite.database import Database
from fanstack.core.errors import TopicDoesNotExist
from fanstack.core.fanout import Route, make_route
from fanstack.core.specs import SubscriptionSpec, TopicSpec


class Topics:
    """Topics and the subscriptions of queues to them; each change bumps the catalog."""

    def __init__(self, database: Database, catalog: Catalog) -> None:
        self._database = database
        self._catalog = catalog

    def create_topic(self, spec: TopicSpec) -> None:
        """Create or replace a topic."""
        with self._database.write() as db:
            db.execute(
                "INSERT INTO topics (name, spec) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                (spec.name, spec.to_json()),
            )
            self._catalog.bump(db)

    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""
        spec = self._catalog.current().topics.get(name)
        if spec is None:
            raise TopicDoesNotExist(name)
        return spec

    def list_topics(self) -> list[TopicSpec]:
        """Every topic, sorted by name."""
        return sorted(self._catalog.current().topics.values(), key=lambda spec: spec.name)

    def delete_topic(self, name: str) -> None:
        """Delete the topic and its subscriptions."""
        with self._database.write() as db:
            if db.execute("DELETE FROM topics WHERE name = ?", (name,)).rowcount == 0:
                raise TopicDoesNotExist(name)
            db.execute("DELETE FROM subscriptions WHERE topic = ?", (name,))
            self._catalog.bump(db)

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace the subscription of a queue to a topic."""
        with self._database.write() as db:
            db.execute(
                "INSERT INTO subscriptions (topic, queue, spec) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, queue) DO UPDATE SET spec = excluded.spec",
                (spec.topic, spec.queue, spec.to_json()),
            )
            self._catalog.bump(db)

    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription if present."""
        with self._database.write() as db:
            db.execute("DELETE FROM subscriptions WHERE topic = ? AND queue = ?", (topic, queue))
            self._catalog.bump(db)

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or all."""
        with self._database.reading() as db:
            if topic is None:
                rows = db.execute("SELECT spec FROM subscriptions ORDER BY topic, queue").fetchall()
            else:
                rows = db.execute(
                    "SELECT spec FROM subscriptions WHERE topic = ? ORDER BY queue", (topic,)
                ).fetchall()
        return [SubscriptionSpec.from_json(spec) for (spec,) in rows]

    def routes(self, topic: str) -> list[Route]:
        """Compiled subscriptions of the topic, cached per catalog version."""
        catalog = self._catalog.current()
        routes = catalog.routes.get(topic)
        if routes is None:
            routes = [
                make_route(spec, catalog.queues[spec.queue])
                for spec in self.list_subscriptions(topic)
                if spec.queue in catalog.queues
            ]
            catalog.routes[topic] = routes
        return routes
