"""text2semantic's control request, shared by the model and its callers (torch-free: the worker imports it).

A request to text2semantic with no inputs and request parameter ``CANCEL_PARAMETER`` = an in-flight request's id
ends that request and frees its slot. Ids must be at least ``MIN_CANCEL_ID_CHARS`` long, so that ids which can
be cancelled this way are unguessable (tts's own streams and the worker's requests end in a uuid4 hex). Who sends
it: tts, because Triton 2.51's BLS cannot cancel a decoupled call it started; the worker's client, because an
ensemble tts (shared knob pcm_decoding = text2semantic) does not pass a client's cancellation on.
"""

from __future__ import annotations

TEXT2SEMANTIC = "text2semantic"
CANCEL_PARAMETER = "cancel_request_id"
MIN_CANCEL_ID_CHARS = 32
