"""The AWS services fanstack answers for, one module a service: each maps its operations (by
botocore's names, taking and returning the model's parameters) onto fanstack's resources."""
