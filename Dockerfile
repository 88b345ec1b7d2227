# compass-auth example service.
#
#   docker build -t compass-auth:dev .
#   docker run --rm -p 8080:8080 -e AUTH_AUDIENCE=compass-internal compass-auth:dev
#   (python -m service serve; AUTH_AUDIENCE has no default, docs/settings.md)
#
# Two stages: the build stage installs the library with the `service` extra (pyproject.toml, the
# one place dependencies are declared) into a virtualenv; the runtime stage copies only that
# virtualenv and the example service (service/, which runs from its folder) onto the same slim
# base. No compiler is needed (every dependency ships wheels) and none is in either
# stage; pip keeps no cache, and pip itself stays out of the virtualenv.
#
# PYTHON_IMAGE exists so that a base can be substituted (a mirror, a digest pin, or the
# locally built Debian base that `make image-test` uses on machines without registry access).
# Both stages must use the same base: the virtualenv links to the base's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# A virtualenv without pip: the base's pip installs into it with --python.
RUN python3 -m venv --without-pip /opt/venv
WORKDIR /src
COPY setup.py pyproject.toml README.md LICENSE ./
COPY compass_auth ./compass_auth
RUN python3 -m pip --python /opt/venv/bin/python install --no-cache-dir '.[service]'
COPY service ./service
RUN /opt/venv/bin/python -m service --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="compass-auth" \
      org.opencontainers.image.description="Verifies Kubernetes bound service-account tokens"
# The root file system is read-only in the pod: no .pyc writes (pip compiled them at install).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build /src/service /app/service
# A numeric user, so that the kubelet can check runAsNonRoot without a passwd entry.
USER 10001:10001
EXPOSE 8080
# Exec form: python is PID 1 and receives SIGTERM itself; the service handles it (it drains:
# stops accepting, finishes requests in flight, exits 0), so no init wrapper is needed.
ENTRYPOINT ["python", "-m", "service", "serve"]
