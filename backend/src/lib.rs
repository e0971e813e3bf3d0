//! irqstorm vhost-user back end (see docs/device-spec.md).
