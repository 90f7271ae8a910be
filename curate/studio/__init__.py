"""The embedded Label Studio server: its own virtualenv, data in the workspace, 127.0.0.1 only."""
