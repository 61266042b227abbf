-- Billed invoice reconciliation lines: one row per live line (key: invoice_id, attribute_set, line_ordinal).
with lines as (
  {{ live_rows('billed_reconciliation', ['invoice_id', 'attribute_set', 'line_ordinal'], [
      'invoice_id', 'attribute_set', 'line_ordinal', 'billing_month', 'invoice_number',
      'customer_id', 'customer_name', 'subscription_id', 'order_id', 'product_id', 'sku_id',
      'product_name', 'charge_type', 'credit_reason_code', 'charge_start_date',
      'charge_end_date', 'billable_quantity', 'unit_price', 'subtotal', 'tax_total', 'total',
      'currency', '_invoice_version', '_manifest_etag']) }}
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
  order_id,
  product_id,
  sku_id,
  product_name,
  charge_type,
  credit_reason_code,
  {{ utc_date('charge_start_date') }} as charge_start_date,
  {{ utc_date('charge_end_date') }} as charge_end_date,
  {{ money('billable_quantity') }} as billable_quantity,
  {{ money('unit_price') }} as unit_price,
  {{ money('subtotal') }} as subtotal,
  {{ money('tax_total') }} as tax_total,
  {{ money('total') }} as total,
  currency,
  _invoice_version,
  _manifest_etag
from lines
