"""One module per pipeline stage: dedup/split, plan, respond, judge, perturb, assemble."""
