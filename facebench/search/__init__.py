"""Open-set search: a faiss gallery with identities and a global cosine threshold."""

from facebench.search.gallery import UNKNOWN, Gallery, decide

__all__ = ["UNKNOWN", "Gallery", "decide"]
