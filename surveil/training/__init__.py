"""Fine-tuning toolkit: ``surveil train`` (datasets, transforms, architectures, training loop)."""
