"""VCS provider adapters (GitHub, GitLab) and sans-I/O webhook verification."""
