"""Realtime alerts: which events become GCN-style notices, and what those notices say."""
