"""What personalizing gains and what it costs: the guard, forgetting, trainable text blocks, sensors, drift monitoring."""
