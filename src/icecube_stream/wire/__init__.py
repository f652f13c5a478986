"""What travels between components: topics and their codecs, the pulse frame, the checks every
event must pass, the reason codes of every refusal, and the model server's answer.

Depends on nothing of the project above it, so the worker, the model server and the tools all
read one definition.
"""
