"""slack-pii-proxy: find and redact PII and secrets in Slack messages before Slack stores them."""

__version__ = "0.1.0"
