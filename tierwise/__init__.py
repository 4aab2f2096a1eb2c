"""tierwise: the user-facing CLI (`tierwise ...`) and the Python client."""
