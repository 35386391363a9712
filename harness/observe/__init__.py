"""Observation: probes of the cluster over HTTP, the run's history, the live view, replica start times."""
