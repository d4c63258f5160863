"""link: the cloud-edge link's protocol core, with no I/O (in the manner of websockets' sans-I/O core).

What crosses the link is decided here, and nowhere else:

- :mod:`.status`: refusals and failures as upstream's ``StatusError`` (a ``metav1.Status``);
- :mod:`.contracts`: typed builders and parsers of the message kinds: pushes and their acks,
  edge requests and their replies (``{"Object","Err"}`` for mutations, the bare object for some
  queries), control frames;
- :mod:`.routing`: the one routing table both hubs use: which group gets a message, and where the
  ``node/<id>/`` prefix is added and stripped;
- :mod:`.reliable` and :mod:`.session`: state machines fed with messages and a clock that say what
  to send and when to wake: the per-node one-in-flight queue with upstream's 5 s resend,
  keepalive deadlines, heartbeats, reconnect backoff with jitter, the outgoing rate limit;
- :mod:`.requests`: :class:`CloudRequests`, the client edge modules use to ask the cloud: one id,
  one timeout, a typed reply or a :class:`StatusError`.

CloudHub and EdgeHub are thin adapters between websockets and this package. Nothing here imports
asyncio except :mod:`.requests`, which waits on beehive's futures.
"""

from cores.link.status import RequestTimeout, StatusError

__all__ = ["RequestTimeout", "StatusError"]
