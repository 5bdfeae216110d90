"""The dashboard at ``/ui``: static assets served from the package, cookie sign-in with the admin
token, and the few management routes only the page needs (live events, agent details, metrics
samples, the chat playground)."""
