"""Writing the agents of a folder out for other platforms (``atoll export k8s``)."""
