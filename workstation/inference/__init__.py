"""Local AI: model bundles, device choice, sliding-window inference, heatmap -> findings."""
