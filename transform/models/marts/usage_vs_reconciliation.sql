-- Per invoice, customer and billing currency: the Azure plan usage (billed daily-rated
-- usage) against the reconciliation lines that bill it (product Azure plan). Grain:
-- invoice_id, customer_id, currency.
--
-- Join: invoice id, customer id and the billing currency (usage billing_currency =
-- reconciliation currency); amounts are pre-tax in the billing currency on both sides
-- (usage billing_pre_tax_total, reconciliation subtotal). Every charge type counts on both
-- sides: amounts are signed, credits are negative. A full outer join, so usage nobody billed
-- and Azure plan lines without usage both show.
{% set tolerance = var('reconciliation_tolerance_per_line') %}
with usage as (
  select
    invoice_id,
    customer_id,
    max(customer_name) as customer_name,
    billing_currency as currency,
    count(*) as usage_lines,
    sum(billing_pre_tax_total) as usage_total
  from {{ ref('stg_billed_usage') }}
  where attribute_set = '{{ var("attribute_set") }}'
  group by invoice_id, customer_id, billing_currency
),

billing as (
  select
    invoice_id,
    customer_id,
    max(customer_name) as customer_name,
    currency,
    count(*) as reconciliation_lines,
    sum(subtotal) as billed_total
  from {{ ref('stg_billed_reconciliation') }}
  where attribute_set = '{{ var("attribute_set") }}'
    and product_id = '{{ var("azure_plan_product_id") }}'
  group by invoice_id, customer_id, currency
),

joined as (
  select
    coalesce(usage.invoice_id, billing.invoice_id) as invoice_id,
    coalesce(usage.customer_id, billing.customer_id) as customer_id,
    coalesce(usage.customer_name, billing.customer_name) as customer_name,
    coalesce(usage.currency, billing.currency) as currency,
    coalesce(usage.usage_lines, 0) as usage_lines,
    coalesce(usage.usage_total, 0) as usage_total,
    coalesce(billing.reconciliation_lines, 0) as reconciliation_lines,
    coalesce(billing.billed_total, 0) as billed_total,
    coalesce(billing.billed_total, 0) - coalesce(usage.usage_total, 0) as difference,
    {{ money(tolerance ~ ' * coalesce(billing.reconciliation_lines, 0)') }} as tolerance
  from usage
  full outer join billing
    on billing.invoice_id = usage.invoice_id
    and billing.customer_id = usage.customer_id
    and billing.currency = usage.currency
)

select
  *,
  case when abs(difference) <= tolerance then 'reconciled' else 'mismatch' end as status
from joined
