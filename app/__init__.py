"""The GitHub App and GitLab webhook service that previews and gates pull requests."""
