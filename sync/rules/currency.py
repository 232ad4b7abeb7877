"""CURRENCY: Business Central currencies as Sales transaction currencies.

- Coupled by ISO code; a code that is not a standard ISO 4217 code is not coupled and is reported.
- Business Central's local currency (LCY, a blank currency code on its records) is the Dataverse
  currency whose ISO code is the LCY code.
- The exchange rate is the rate from the Dataverse base currency to the currency, from Business
  Central's Currency Exchange Rates: the currency factor when the base currency is LCY, a cross
  rate otherwise; a currency without a rate is an error naming it.
- A blank symbol becomes the ISO code; the precision of a new currency is the organisation's.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Sequence

from .. import facts
from ..errors import AlreadyExistsError, RecordError
from ..model import BcTable, CrmLookup, CrmTable, Side
from ..ports import NewRow, Record
from ..tables import CRM_CURRENCY
from . import MappingRules, RuleContext

LCY_NAMESPACE = uuid.UUID("a1c5e0d2-7f44-4c1e-8d1f-6a0b9c3e2f75")
BC_COMPANY_INFORMATION = BcTable("companyInformation", "Company Information", key_field="displayName")
BC_EXCHANGE_RATES = BcTable.page("CurrencyExchangeRates", "Currency Exchange Rate", ("Currency_Code", "Starting_Date"))
CRM_ORGANIZATION = CrmTable("organization", "organizations", "organizationid", "name",
                            lookups={"basecurrencyid": CrmLookup("basecurrencyid", "transactioncurrencies")})

# ISO 4217 alphabetic codes in use (plus precious metals and special units, which Dataverse accepts).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN
NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL
SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES
VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
""".split())


def company_information(ctx: RuleContext) -> dict[str, Any]:
    """Business Central's Company Information: the local currency code (LCY) and the company's display name."""
    def read() -> dict[str, Any]:
        rows = next(iter(ctx.bc.read_changed(BC_COMPANY_INFORMATION, ["currencyCode", "displayName"], since=None)), [])
        if not rows or not rows[0].values.get("currencyCode"):
            raise RecordError("Business Central's Company Information has no local currency code (LCY).")
        return rows[0].values
    return ctx.facts.get(facts.BC_COMPANY_INFORMATION, read)


class CurrencyRules(MappingRules):
    extra_fields = {Side.CRM: ("exchangerate", "currencyprecision", "currencysymbol")}
    stales = (facts.LCY_CURRENCY,)  # the job writes Sales currencies
    reads = (BC_COMPANY_INFORMATION, BC_EXCHANGE_RATES, CRM_ORGANIZATION)

    # -- what the other mappings need: the local currency ---------------------------------------

    @staticmethod
    def lcy_code(ctx: RuleContext) -> str:
        return company_information(ctx)["currencyCode"].upper()

    def lcy_currency_id(self, ctx: RuleContext) -> str:
        """The Dataverse currency that stands for Business Central's blank (local) currency code;
        created when Sales has none (name and symbol = the code, the organisation's precision)."""
        code = self.lcy_code(ctx)
        # found again when the local currency changed since
        return ctx.facts.get(facts.LCY_CURRENCY, lambda: {"code": code, "id": self._lcy_row(ctx, code)},
                             fits=lambda kept: kept["code"] == code)["id"]

    def _lcy_row(self, ctx: RuleContext, code: str) -> str:
        rows = ctx.crm.read_matching(CRM_CURRENCY, ["isocurrencycode"], "isocurrencycode", [code])
        return rows[0].id if rows else self._create_lcy(ctx, code)

    def _create_lcy(self, ctx: RuleContext, code: str) -> str:
        self._load_rates(ctx)
        new_id = str(uuid.uuid5(LCY_NAMESPACE, code))
        [result] = ctx.crm.insert(CRM_CURRENCY, [NewRow({
            "isocurrencycode": code, "currencyname": code, "currencysymbol": code,
            "currencyprecision": ctx.cache["precision"], "exchangerate": self.exchange_rate(ctx, code)}, new_id)],
            ["isocurrencycode"])
        if result.error is not None and not isinstance(result.error, AlreadyExistsError):
            raise RecordError(f"The local currency {code} could not be created in Sales: {result.error.message}",
                              code="NoLocalCurrency")
        ctx.note(f"created the local currency {code} in Sales")
        return new_id

    def blank_counterpart(self, ctx: RuleContext, target: Side) -> Any:
        """A blank Business Central currency code means LCY; in Sales that is a currency row."""
        return self.lcy_currency_id(ctx) if target is Side.CRM else None

    def is_blank_counterpart(self, ctx: RuleContext, value: Any) -> bool:
        return str(value).lower() == str(self.lcy_currency_id(ctx)).lower()

    # -- the CURRENCY job ----------------------------------------------------------------------------

    def accept(self, ctx: RuleContext, row: Record, coupling) -> RecordError | None:
        code = (row.values.get("code") or "").upper()
        if code not in ISO_4217:
            return RecordError(f"Currency {code}: '{code}' is not a standard ISO 4217 currency code, so it is not "
                               f"coupled to a Sales transaction currency.", field="Code", code="NotIsoCurrency")
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        self._load_rates(ctx)

    def _load_rates(self, ctx: RuleContext) -> None:
        """Business Central's rates in force today, the Dataverse base currency, its precision."""
        if "factors" in ctx.cache:
            return
        today = dt.date.today().isoformat()
        latest: dict[str, tuple[str, float]] = {}
        for page in ctx.bc.read_changed(BC_EXCHANGE_RATES, ["Currency_Code", "Starting_Date", "Exchange_Rate_Amount",
                                                             "Relational_Exch_Rate_Amount"], since=None):
            for r in page:
                code, start = (r.values.get("Currency_Code") or "").upper(), str(r.values.get("Starting_Date") or "")
                amount, relational = r.values.get("Exchange_Rate_Amount") or 0, r.values.get("Relational_Exch_Rate_Amount") or 0
                if start[:10] <= today and relational and (code not in latest or start > latest[code][0]):
                    latest[code] = (start, float(amount) / float(relational))  # units of the currency per 1 LCY
        ctx.cache["factors"] = {code: factor for code, (_, factor) in latest.items()}
        org = next(iter(ctx.crm.read_changed(CRM_ORGANIZATION, ["basecurrencyid", "currencydecimalprecision"],
                                             since=None)), [])
        base_id = org[0].values.get("basecurrencyid") if org else None
        base = ctx.crm.read_ids(CRM_CURRENCY, ["isocurrencycode"], [base_id]) if base_id else []
        ctx.cache["base"] = base[0].values["isocurrencycode"].upper() if base else self.lcy_code(ctx)
        ctx.cache["precision"] = (org[0].values.get("currencydecimalprecision") if org else None) or 2

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        code = (row.values.get("code") or "").upper()
        values: dict[str, Any] = {"exchangerate": self.exchange_rate(ctx, code)}
        if not row.values.get("symbol"):
            values["currencysymbol"] = code
        if dst_row is None:
            values["currencyprecision"] = ctx.cache["precision"]
        return values

    def exchange_rate(self, ctx: RuleContext, code: str) -> float:
        base, factors = ctx.cache["base"], ctx.cache["factors"]
        lcy = self.lcy_code(ctx)
        if code == base:
            return 1.0

        def factor(c: str) -> float | None:
            return 1.0 if c == lcy else factors.get(c)

        mine, theirs = factor(code), factor(base)
        if not mine or not theirs:
            missing = code if not mine else base
            raise RecordError(f"Currency {code}: there is no exchange rate for {missing} in Business Central "
                              f"(Currency Exchange Rates), so its Sales exchange rate cannot be set.",
                              field="Exchange Rate", code="NoExchangeRate")
        return round(mine / theirs, 10)
