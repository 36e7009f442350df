"""Kafka client security in one place: faust, aiokafka and kafka-python take the same settings.

Every client the project opens (faust's consumer and producer, the aiokafka readers of the
model follower and the terminal view, kafka-python's admin, producers and consumers in the
trainer and the CLI; librdkafka's kcat in the benchmark) gets its TLS context and SASL
credentials from here or from :meth:`Settings.kafka_python_security`, so a secure
deployment cannot leave one client on PLAINTEXT.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Awaitable, Callable

import faust

from .config import Settings

__all__ = ["ssl_context", "faust_credentials", "aiokafka_security", "librdkafka_config",
           "follow_forever"]


def ssl_context(s: Settings) -> ssl.SSLContext:
    """TLS context for SSL and SASL_SSL: the CA and, when configured, the client certificate."""
    context = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
    if s.ssl_certfile:
        context.load_cert_chain(str(s.ssl_certfile), str(s.ssl_keyfile) if s.ssl_keyfile else None,
                                s.ssl_key_password.get_secret_value() if s.ssl_key_password else None)
    return context


def faust_credentials(s: Settings) -> Any:
    """faust's broker credentials for the configured security protocol (None: PLAINTEXT)."""
    if s.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(s) if s.security_protocol.endswith("SSL") else None
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.sasl_username,
            password=s.sasl_password.get_secret_value() if s.sasl_password else None,
            mechanism=s.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def aiokafka_security(s: Settings) -> dict[str, Any]:
    """aiokafka client keyword arguments for the configured security protocol."""
    kwargs: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl_context(s)
    if s.security_protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                      sasl_plain_password=s.sasl_password.get_secret_value() if s.sasl_password else None)
    return kwargs


def librdkafka_config(s: Settings) -> dict[str, str]:
    """librdkafka properties (kcat, the benchmark's load generator) for the same security."""
    conf = {"security.protocol": s.security_protocol.lower()}
    if s.security_protocol.endswith("SSL"):
        for key, value in (("ssl.ca.location", s.ssl_cafile), ("ssl.certificate.location",
                           s.ssl_certfile), ("ssl.key.location", s.ssl_keyfile)):
            if value is not None:
                conf[key] = str(value)
        if s.ssl_key_password is not None:
            conf["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    if s.security_protocol.startswith("SASL"):
        conf["sasl.mechanisms"] = str(s.sasl_mechanism)
        conf["sasl.username"] = str(s.sasl_username)
        conf["sasl.password"] = s.sasl_password.get_secret_value() if s.sasl_password else ""
    return conf


async def follow_forever(follow: Callable[[], Awaitable[None]], what: str,
                         log: logging.Logger, retry_s: float = 2.0) -> None:
    """Run a topic reader (``follow``) until cancelled, starting it again after any error.

    The worker's own readers (the model follower, the terminal replica's feed) resume where
    they stopped: a broker outage or a bad record costs a retry, never the task.
    """
    while True:
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following %s failed; retrying in %.0f s", what, retry_s)
            await asyncio.sleep(retry_s)
