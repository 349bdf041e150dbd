# New configuration: recreate and restart the worker.
worker_start
