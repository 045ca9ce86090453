"""The gateway: admission, routing, relay and metering on the request path."""
