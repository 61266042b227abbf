-- Billed daily-rated Azure usage: one row per live line (key: invoice_id, attribute_set, line_ordinal).
with usage as (
  {{ live_rows('billed_usage', ['invoice_id', 'attribute_set', 'line_ordinal'], [
      'invoice_id', 'attribute_set', 'line_ordinal', 'billing_month', 'invoice_number',
      'customer_id', 'customer_name', 'subscription_id', 'product_id', 'meter_category',
      'meter_name', 'charge_type', 'usage_date', 'quantity', 'billing_pre_tax_total',
      'billing_currency', 'pricing_pre_tax_total', 'pricing_currency', '_invoice_version',
      '_manifest_etag']) }}
)
select
  invoice_id,
  attribute_set,
  cast(line_ordinal as integer) as line_ordinal,
  billing_month,
  invoice_number,
  customer_id,
  customer_name,
  subscription_id,
  product_id,
  meter_category,
  meter_name,
  charge_type,
  {{ utc_date('usage_date') }} as usage_date,
  {{ money('quantity') }} as quantity,
  {{ money('billing_pre_tax_total') }} as billing_pre_tax_total,
  billing_currency,
  {{ money('pricing_pre_tax_total') }} as pricing_pre_tax_total,
  pricing_currency,
  _invoice_version,
  _manifest_etag
from usage
