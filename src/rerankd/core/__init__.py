"""The transport-free core: request and result types, typed errors, holds, compute threads.

Everything else builds on this package and it builds on nothing of rerankd's: no HTTP, no
dialect field names, no torch. `from rerankd import Client` imports only this much of it.
"""
