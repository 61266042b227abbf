-- Unbilled daily-rated Azure usage: one row per live line (key: billing_month, currency, attribute_set, line_ordinal).
with usage as (
  {{ live_rows('unbilled_usage', ['billing_month', 'currency', 'attribute_set', 'line_ordinal'], [
      'billing_month', 'currency', 'attribute_set', 'line_ordinal', 'invoice_number',
      'customer_id', 'customer_name', 'subscription_id', 'product_id', 'meter_category',
      'meter_name', 'charge_type', 'usage_date', 'quantity', 'billing_pre_tax_total',
      'billing_currency', 'pricing_pre_tax_total', 'pricing_currency', '_invoice_version',
      '_manifest_etag']) }}
)
select
  billing_month,
  currency as export_currency,
  attribute_set,
  cast(line_ordinal as integer) as line_ordinal,
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
