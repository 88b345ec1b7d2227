"""Offline checks of the deployment: Dockerfile, k8s/ manifests, config/ and the image build."""
