"""What each nation believes: batched Kalman kernels, motion models, trackers, sharing network, track fusion, metrics."""
