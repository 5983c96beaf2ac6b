"""The AWS wire API: what lets boto3, the AWS CLI and Terraform talk to fanstack unchanged.

`protocols` is the codec (requests in, responses out, driven by botocore's service models); the
services built on it map each operation onto fanstack's own resources.
"""
