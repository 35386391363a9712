"""Serve applications under test. Imported inside Ray workers: keep imports light."""
