"""The HTTP plumbing both servers share, written once: browser checks (origin, Host), bearer
tokens, request ids and access lines, body limits and method names for metrics.

The agent server (``atoll.server``) and the deployment server (``atoll.deploy``) each put one
:class:`~atoll.httpkit.front.FrontMiddleware` outermost; what differs between them (error bodies,
metrics, who needs a token) is handed to it, never copied.
"""

from atoll.httpkit.bearer import TokenSet, bearer_token, signed_holder, signed_token
from atoll.httpkit.body import BodyLimit, framing_problem
from atoll.httpkit.browser import BrowserPolicy, HostPolicy, OriginPolicy
from atoll.httpkit.front import FrontMiddleware
from atoll.httpkit.methods import metric_method
from atoll.httpkit.refusal import Refusal
from atoll.httpkit.requests import RouteTemplates, header, logged_path, request_id_of

__all__ = [
    "BodyLimit",
    "BrowserPolicy",
    "FrontMiddleware",
    "HostPolicy",
    "OriginPolicy",
    "Refusal",
    "RouteTemplates",
    "TokenSet",
    "bearer_token",
    "framing_problem",
    "header",
    "logged_path",
    "metric_method",
    "request_id_of",
    "signed_holder",
    "signed_token",
]
