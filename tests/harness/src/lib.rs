//! Host harness for irqstorm guest runs.
