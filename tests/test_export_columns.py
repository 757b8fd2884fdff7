"""Columns as real exports name them: Indian CRM and marketplace headers, split names, a second
phone column, ad platforms' campaign columns."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests

from leadpush.checks import Checker, CheckSettings, RowDefaults
from leadpush.mapping import build_column_map, parse_map_options
from leadpush.readers import open_lead_file
from leadpush.sandbox import Sandbox
from tests.conftest import write_csv

TODAY = dt.date(2026, 11, 27)
KEY = "demo-key-export-columns"
CONFIG = {"accounts": [{"user": "demo", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "Main", "type": "progressive", "started": True}]}]}


def checked(path, **kw):
    with open_lead_file(path) as f:
        return list(Checker(CheckSettings(**kw), today=TODAY).check_file(f))


@pytest.mark.parametrize("header", ["Contact No", "Mob No", "Cell No", "WhatsApp Number", "Mobile Phone",
                                    "Mobile Phone Number", "Customer Mobile", "Primary Phone", "Phone 1",
                                    "SENDER_MOBILE", "Contact No."])
def test_indian_phone_headers(header):
    assert build_column_map([header, "x"], {}).fields == {"phoneNumber": header}


@pytest.mark.parametrize("header", ["Client Name", "Contact Person", "Applicant Name", "SENDER_NAME"])
def test_indian_name_headers(header):
    assert build_column_map([header, "Phone"], {}).fields == {"Name": header, "phoneNumber": "Phone"}


def test_a_first_list_header_wins_over_the_others_without_an_error():
    cmap = build_column_map(["Phone", "WhatsApp Number", "Name", "Client Name"], {})
    assert cmap.fields == {"phoneNumber": "Phone", "Name": "Name"}
    assert [sent for _, sent in cmap.passthrough] == ["WhatsApp Number", "Client Name"]


def test_name_is_built_from_first_and_last(tmp_path):
    path = write_csv(tmp_path / "hubspot.csv", [["First Name", "Last Name", "Phone Number", "Email"],
                                                ["Asha", "Rao", "9876543210", "a@x.in"],
                                                ["Ravi", "", "9123456789", ""]])
    out = checked(path, defaults=RowDefaults(campaign="Main"))
    assert [b["Name"] for _, b in out] == ["Asha Rao", "Ravi"]
    assert "First Name" not in out[0][1] and out[0][1]["Email"] == "a@x.in"


def test_a_name_column_keeps_first_and_last_as_extra_fields(tmp_path):
    path = write_csv(tmp_path / "n.csv", [["Name", "First Name", "Phone"], ["Asha Rao", "Asha", "9876543210"]])
    (_, body), = checked(path, defaults=RowDefaults(campaign="Main"))
    assert body["Name"] == "Asha Rao" and body["First Name"] == "Asha"


def test_an_empty_phone_names_the_other_phone_column(tmp_path):
    path = write_csv(tmp_path / "two.csv", [["Phone", "WhatsApp Number", "Campaign"],
                                            ["", "98765 43210", "Main"], ["", "", "Main"]])
    out = [o for o, _ in checked(path)]
    assert [o.cause for o in out] == ["phone.empty_other", "phone.empty"]
    assert "'WhatsApp Number' holds '98765 43210'" in out[0].message
    assert '--map "WhatsApp Number=phoneNumber"' in out[0].message


META = [["id", "created_time", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
         "form_id", "form_name", "is_organic", "platform", "full_name", "phone_number"],
        ["l:1", "2026-11-20", "a1", "Ad 1", "s1", "Set 1", "c1", "Diwali Offer - Leads", "f1", "Form", "false",
         "fb", "Asha Rao", "p:+919876543210"],
        ["l:2", "2026-11-20", "a1", "Ad 1", "s1", "Set 1", "c1", "Diwali Offer - Leads", "f1", "Form", "false",
         "ig", "Ravi Kumar", "p:+919123456789"]]


def test_an_ad_platforms_campaign_column_is_not_taken_as_the_cloudagent_campaign(tmp_path):
    path = write_csv(tmp_path / "meta.csv", META)
    out = [o for o, _ in checked(path)]
    assert [o.cause for o in out] == ["campaign.missing", "campaign.missing"]
    assert "'campaign_name' is the ad platform's campaign" in out[0].message
    assert [o.campaign for o in (o for o, _ in checked(path, defaults=RowDefaults(campaign="Main")))] == ["Main"] * 2
    mapped = checked(path, user_map=parse_map_options(["campaign_name=campaignName"]))
    assert [o.campaign for o, _ in mapped] == ["Diwali Offer - Leads"] * 2


def test_a_plain_campaign_column_is_still_taken(tmp_path):
    path = write_csv(tmp_path / "plain.csv", [["Phone", "Campaign", "ad_name"], ["9876543210", "Main", "x"]])
    assert [o.campaign for o, _ in checked(path)] == ["Main"]


def test_meta_export_end_to_end_with_campaign(cli, tmp_path):
    path = tmp_path / "meta.tsv"
    path.write_text("\n".join("\t".join(r) for r in META) + "\n", encoding="utf-16")
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY,
               "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        r = cli("upload", str(path), "--campaign", "Main", "--rate", "6000/min", "--json", env=env)
        leads = requests.get(sb.base_url + "/sandbox/leads").json()["accounts"]["demo"]["campaigns"]["Main"]
    assert r.exit_code == 0, r.output
    assert sorted((lead["Name"], lead["phoneNumber"]) for lead in leads["leads"]) == [
        ("Asha Rao", "+919876543210"), ("Ravi Kumar", "+919123456789")]
    assert all("campaign_name" not in lead for lead in leads["leads"])
    assert {n["note"]: n["rows"] for n in json.loads(r.stdout)["notes"]} == {"read.meta_prefix": 2}
