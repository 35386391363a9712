"""Load: the open-model schedule, the Locust user (ours or the user's), the endpoints it aims at, and who served each request."""
