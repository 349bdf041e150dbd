# Restarts prov's registry.
registry_start
