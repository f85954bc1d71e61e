"""The `tuner` command line: the composition root, the one place that may import every layer
(tuner, api, workers), lazily. It lives outside `tuner/` so the core library stays pure."""
