"""Know before launch whether a run fits and how long it takes at best (`crl plan`, and `crl train`'s memory check).

devices: target-device table; memory: abstract state and compiled-program memory; flops: FLOPs per SGD update;
planner: the Plan of a config; advice: fit verdicts and fixes; preflight: the check `crl train` runs;
report: text / JSON output; cli: `crl plan`.
"""
