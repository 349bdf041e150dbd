# Restarts the worker.
worker_start
