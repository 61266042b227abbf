-- Partner Center's invoice list: one row per invoice (credit and adjustment notes included).
with invoices as (
  {{ live_rows('invoices', ['id'], [
      'id', 'billing_month', 'document_type', 'invoice_type', 'currency_code', 'total_charges',
      'paid_amount', 'amends_of', 'invoice_date', 'has_export_data']) }}
)
select
  id as invoice_id,
  billing_month,
  {{ month_start('billing_month') }} as billing_month_start,
  document_type,
  invoice_type,
  currency_code as currency,
  {{ money('total_charges') }} as total_charges,
  {{ money('paid_amount') }} as paid_amount,
  amends_of,
  {{ utc_date('invoice_date') }} as invoice_date,
  {{ boolean('has_export_data') }} as has_export_data
from invoices
