"""Console URLs: get_serial_console and get_vnc_console answer a URL of
the console proxy carrying a one-time token (console.tokens), signed with
this host's own key, that names the guest's console address (and the VNC
server's password); the agent keeps no record of it."""
import logging
import urllib.parse

from compute.core import exception
from compute.core.instance import virt_instance
from console import tokens
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)


def console_urls(conf, kind, uuid, token):
    """The answer's URLs (pure): the websocket URL, and for VNC the noVNC
    page opening it when one is configured."""
    base = conf.serial_proxy_url if kind == "serial" else conf.vnc_proxy_url
    websocket = f"{base.rstrip('/')}/{uuid}?token={token}"
    answer = {"type": kind, "url": websocket, "websocket": websocket,
              "expires_in": conf.token_ttl}
    if kind == "vnc" and conf.novnc_url:
        path = urllib.parse.urlsplit(websocket)
        relative = path.path.lstrip("/") + "?" + path.query
        answer["url"] = f"{conf.novnc_url}?path={urllib.parse.quote(relative, safe='')}"
    return answer


class ConsoleAccess:
    def __init__(self, conf, db, driver):
        self.conf, self.db, self.driver = conf, db, driver

    def get(self, uuid, kind):
        key = self.conf.console.token_key
        if not key:
            raise exception.ConsoleUnavailable(
                f"host {self.conf.host} gives no console access ([console] token_key unset)")
        inst = self.db.instance_get(uuid)
        try:
            host, port, password = self.driver.get_console_target(virt_instance(inst), kind)
        except virt_errors.ConsoleUnavailable as e:
            raise exception.ConsoleUnavailable(str(e)) from None
        try:
            token = tokens.issue(key.encode(), self.conf.host, kind, uuid, host, port,
                                 self.conf.console.token_ttl, password=password)
        except ValueError as e:
            raise exception.ConsoleUnavailable(
                f"host {self.conf.host}: no console tokens: {e}") from None
        LOG.info("instance %s: %s console token issued", uuid, kind)
        return console_urls(self.conf.console, kind, uuid, token)
