# New configuration: restart the registry with it.
registry_start
