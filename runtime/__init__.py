"""The system under test and how to operate it (local embedded cluster, KubeRay)."""
