"""`kubento deploy`: a BentoDeployment built from the code, applied to a cluster."""
