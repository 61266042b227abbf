-- Per customer, billing month and currency: what was invoiced and what is building up
-- unbilled, side by side. Grain: customer_id, billing_month, currency.
--
-- Billed: the billed reconciliation lines (pre-tax subtotal) of the month's invoices and
-- credit notes; they include the Azure plan lines that bill the month's usage, so billed
-- usage is not added again. Unbilled: unbilled usage (billing_pre_tax_total) plus the
-- unbilled reconciliation lines other than Azure plan ones (those would count the same
-- usage twice). A month leaves the unbilled tables when it is invoiced (the tap retires its
-- rows in the run that sees the invoice), so a month is billed or unbilled, not both.
with billed as (
  select customer_id, customer_name, billing_month, currency, subtotal as amount
  from {{ ref('stg_billed_reconciliation') }}
  where attribute_set = '{{ var("attribute_set") }}'
),

unbilled_usage as (
  select customer_id, customer_name, billing_month, billing_currency as currency,
    billing_pre_tax_total as amount
  from {{ ref('stg_unbilled_usage') }}
  where attribute_set = '{{ var("attribute_set") }}'
),

unbilled_other as (
  select customer_id, customer_name, billing_month, currency, subtotal as amount
  from {{ ref('stg_unbilled_reconciliation') }}
  where attribute_set = '{{ var("attribute_set") }}'
    and product_id <> '{{ var("azure_plan_product_id") }}'
),

amounts as (
  select customer_id, customer_name, billing_month, currency,
    amount as billed, 0 as unbilled_usage, 0 as unbilled_other
  from billed
  union all
  select customer_id, customer_name, billing_month, currency, 0, amount, 0
  from unbilled_usage
  union all
  select customer_id, customer_name, billing_month, currency, 0, 0, amount
  from unbilled_other
)

select
  customer_id,
  max(customer_name) as customer_name,
  billing_month,
  {{ month_start('billing_month') }} as billing_month_start,
  currency,
  {{ money('sum(billed)') }} as billed_total,
  {{ money('sum(unbilled_usage)') }} as unbilled_usage_total,
  {{ money('sum(unbilled_other)') }} as unbilled_other_total,
  {{ money('sum(unbilled_usage) + sum(unbilled_other)') }} as unbilled_total,
  {{ money('sum(billed) + sum(unbilled_usage) + sum(unbilled_other)') }} as total_cost
from amounts
group by customer_id, billing_month, currency
