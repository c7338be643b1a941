# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one XML parser of the collection, for every XML we read (libvirt's or a user's).

No network, no DTD, no entity expansion, no huge trees; a DOCTYPE is refused outright.
Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import MissingLibrary, ValidationError

LXML_IMPORT_ERROR = None
try:
    from lxml import etree
    HAS_LXML = True
except ImportError:  # modules declare it (base_module); hardened_parser raises MissingLibrary naming it
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = traceback.format_exc()


def require_lxml():
    """Raise MissingLibrary naming lxml when it cannot be imported (filters on the controller)."""
    if not HAS_LXML:
        raise MissingLibrary("lxml", LXML_IMPORT_ERROR)


def hardened_parser(remove_blank_text=False):
    """An lxml parser for XML we did not write: no network, no DTD, no entity expansion, no
    huge trees (lxml's limits on depth and text size stay on)."""
    require_lxml()
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True, remove_blank_text=remove_blank_text)


def parse_xml(xml, remove_blank_text=False):
    """XML text/bytes (or an element, returned as is) -> root element, with the hardened parser.

    A DOCTYPE is refused: libvirt never writes one, and it is how entity bombs come in.
    """
    if hasattr(xml, "tag"):
        return xml
    require_lxml()
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        root = etree.fromstring(data, hardened_parser(remove_blank_text))
    except etree.XMLSyntaxError as err:
        raise ValidationError("XML is not well-formed: %s" % err, field="xml")
    if root.getroottree().docinfo.doctype:
        raise ValidationError("XML must not carry a DOCTYPE", field="xml")
    return root
