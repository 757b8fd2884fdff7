"""Why a row did not go through: stable cause codes, each with the field it concerns, a label and a hint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    code: str  # stable: scripts group by it (README, "Causes")
    field: str | None  # the CloudAgent field whose cell is at fault; None: the row as a whole
    label: str  # what happened, in a few words ("phone in scientific notation")
    hint: str  # what to do about it


class Problem(str):
    """One problem's message, as users read it, carrying its cause code.

    A str, so that everything that shows, joins or compares messages works as before; only the
    reports that group by cause read `.cause`.
    """

    cause: str

    def __new__(cls, cause: str, message: str) -> Problem:
        assert cause in CAUSES, cause
        self = super().__new__(cls, message)
        self.cause = cause
        return self


CAUSES: dict[str, Cause] = {c.code: c for c in (
    # Local checks: the row is `invalid` and the field's cell is marked.
    Cause("phone.empty", "phoneNumber", "phone number empty", "fill in the phone number"),
    Cause("phone.empty_other", "phoneNumber", "phone number empty, another phone column has a number",
          "map that column with --map \"Column=phoneNumber\", or fill in the phone"),
    Cause("phone.scientific", "phoneNumber", "phone in scientific notation (digits already lost)",
          "format the column as text and export the file again"),
    Cause("phone.length", "phoneNumber", "phone number with too few or too many digits",
          "CloudAgent takes 3 to 16 digits"),
    Cause("phone.invalid", "phoneNumber", "phone number with characters other than digits",
          "use digits with an optional leading +"),
    Cause("phone.spreadsheet_error", "phoneNumber", "phone cell holding a spreadsheet error (#ERROR!, #VALUE! ...)",
          "fix the formula, or paste the numbers as values, and export again"),
    Cause("phone.grouped", "phoneNumber", "phone written with digit grouping (98,20,69,5317)",
          "format the column as text, or remove the commas"),
    Cause("phone.region", "phoneNumber", "not a valid number of the --region",
          "correct the number, or check --region"),
    Cause("phone.other_region", "phoneNumber", "a number of another country than --region",
          "correct the number, or leave out --region"),
    Cause("campaign.missing", "campaignName", "no campaign", "add a campaignName column or pass --campaign"),
    Cause("agent.missing", "agentId", "agentId empty on an agent-wise campaign",
          "fill in the agent, or pass --agent-id"),
    Cause("skill.missing", "skill", "skill empty on a skill-wise campaign", "fill in the skill, or pass --skill"),
    Cause("priority.range", "priority", "priority outside 0-99", "use a whole number from 0 to 99"),
    Cause("priority.invalid", "priority", "priority not a whole number", "use a whole number from 0 to 99"),
    Cause("date.ambiguous", "expiryDate", "expiry date that reads as two dates",
          "write YYYY-MM-DD, or pass --dayfirst or --monthfirst"),
    Cause("date.past", "expiryDate", "expiry date in the past", "fix the date, or pass --allow-past-expiry"),
    Cause("date.serial", "expiryDate", "expiry date that is a number (an Excel date serial?)",
          "format the cell as a date, or write YYYY-MM-DD"),
    Cause("date.incomplete", "expiryDate", "expiry date without day, month or year", "write YYYY-MM-DD"),
    Cause("date.invalid", "expiryDate", "expiry date that is not a date", "write YYYY-MM-DD"),
    Cause("action.invalid", "action", "action other than START or STOP", "use START, STOP or leave it empty"),
    Cause("check_duplicate.invalid", "checkDuplicate", "checkDuplicate other than TRUE or FALSE",
          "use TRUE or FALSE"),
    Cause("value.structured", None, "a JSON array or object where CloudAgent takes text",
          'give the value as text, or leave the column out with --map "column="'),
    # A workbook cell the row takes a field from holds a formula saved without its result (the
    # message names the cell; the whole row is marked, since the cell may feed any field).
    Cause("cell.no_value", None, "a formula saved without its result",
          "open the file in a spreadsheet and save it again, or paste the values"),
    Cause("cell.spreadsheet_error", None, "a cell holding a spreadsheet error (#DIV/0!, #N/A ...)",
          "fix the formula, or paste the values, and save again"),
    Cause("cell.inexact_number", None, "a number beyond the digits a spreadsheet keeps exactly",
          "format the column as text and type the number again"),
    # Rows deliberately not sent (`skipped`): nothing to fix.
    Cause("row.duplicate", None, "same campaign and phone as an earlier row", "nothing: the first one is sent"),
    Cause("row.done_earlier", None, "uploaded in an earlier run (--resume)", "nothing"),
    Cause("row.test_lead", None, "a test lead (Meta's dummy data)", "nothing: test leads are not sent"),
    # Notes on rows that went through: leadpush rewrote a cell to read it (RowOutcome.note).
    Cause("read.digits", None, "phone written in digits of another script (Devanagari, Arabic-Indic, "
          "full-width ...), read as 0-9", "nothing: sent as ASCII digits"),
    Cause("read.meta_prefix", None, "phone starts with Meta's 'p:' (removed)", "nothing"),
    Cause("row.suppressed", None, "on a do-not-call list (--suppress)", "nothing: it must not be dialled"),
    Cause("row.loaded_lately", None, "loaded lately by another run (--skip-loaded-within)", "nothing"),
    Cause("row.deleted_earlier", None, "deleted by an earlier undo (--resume)", "nothing"),
    Cause("row.gone", None, "not in the campaign any more (undo: No Record Found)", "nothing: it is gone"),
    # CloudAgent's answers (`rejected`): the whole row is marked, with CloudAgent's words.
    Cause("cloudagent.rejected", None, "refused by CloudAgent", "read CloudAgent's message on the row"),
    Cause("cloudagent.campaign", None, "campaign refused by CloudAgent (unknown, or not outbound)",
          "check the campaign name, and that the campaign is outbound"),
    Cause("cloudagent.account", None, "account refused by CloudAgent",
          "fix the user name, API key or TOKEN_AUTH setting, then run again"),
    # No verdict (`failed`) and not sent (`aborted`): nothing wrong with the data; run again.
    Cause("send.unknown", None, "outcome unknown: may or may not be stored",
          "check the campaign for the number before sending it again"),
    Cause("send.gave_up", None, "no answer after every retry", "run again later with --resume"),
    Cause("cloudagent.unrecognised", None, "an answer leadpush does not recognise: may or may not be stored",
          "check the campaign for the number before sending it again"),
    Cause("send.token", None, "CloudAgent kept refusing fresh tokens",
          "stop other programs generating tokens for this account, then run again"),
    Cause("not_sent.stopped", None, "not sent: the run stopped", "fix what stopped it, then run again with --resume"),
    Cause("not_sent.interrupted", None, "not sent: interrupted", "run again with --resume"),
    Cause("not_sent.limit", None, "not sent: --limit (a canary run)",
          "check the first rows in the dialer, then run again with --resume"),
    Cause("not_sent.campaign", None, "not sent: its campaign was refused",
          "fix the campaign, then run the failures file again"),
)}


# Causes of failed rows whose lead CloudAgent may already hold: never "just run them again".
UNKNOWN_CAUSES = ("send.unknown", "cloudagent.unrecognised")


def causes_of(code: str) -> list[str]:
    """The codes in an outcome's `cause` (a row with several problems has them all, joined by ';')."""
    return code.split(";") if code else []


def describe(code: str) -> Cause:
    """The cause of a code; one leadpush does not know (an older results file?) is described as itself."""
    return CAUSES.get(code) or Cause(code, None, code, "")
