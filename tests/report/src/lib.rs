//! Scenarios, reports and gating for irqstorm runs.
