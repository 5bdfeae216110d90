"""atoll as an A2A agent (A2A 1.0, the official ``a2a-sdk``): ``parse`` turns an A2A message into the
neutral request, ``render`` turns the agent's events into task updates; the SDK does the protocol.
"""

#: The agent card (public, as A2A discovery needs it) and the JSON-RPC binding, on every agent.
CARD_PATH = "/.well-known/agent-card.json"
A2A_PATH = "/a2a"
