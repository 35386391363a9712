"""The Kubernetes target: kind + KubeRay (or any cluster the user allows)."""
