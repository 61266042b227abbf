-- One row per invoice (credit and adjustment notes included): Partner Center's listed total
-- against the sum of the invoice's billed reconciliation lines, and the invoice's credit
-- notes beside it. Grain: invoice_id.
{% set tolerance = var('reconciliation_tolerance_per_line') %}
with lines as (
  select
    invoice_id,
    count(*) as line_count,
    sum(subtotal) as lines_subtotal,
    sum(total) as lines_total_with_tax
  from {{ ref('stg_billed_reconciliation') }}
  where attribute_set = '{{ var("attribute_set") }}'
  group by invoice_id
),

invoices as (
  select * from {{ ref('stg_invoices') }}
),

-- Credit and adjustment notes point at the invoice they amend (amends_of).
adjustments as (
  select
    notes.amends_of as invoice_id,
    count(*) as adjustment_count,
    sum(note_lines.lines_subtotal) as adjustments_subtotal
  from invoices as notes
  inner join lines as note_lines on note_lines.invoice_id = notes.invoice_id
  where notes.amends_of is not null
  group by notes.amends_of
),

joined as (
  select
    coalesce(invoices.invoice_id, lines.invoice_id) as invoice_id,
    invoices.document_type,
    invoices.amends_of,
    invoices.billing_month,
    invoices.currency,
    invoices.total_charges as listed_total,
    coalesce(lines.line_count, 0) as line_count,
    lines.lines_subtotal as lines_total,
    lines.lines_total_with_tax,
    invoices.total_charges - lines.lines_subtotal as difference,
    {{ money(tolerance ~ ' * coalesce(lines.line_count, 0)') }} as tolerance,
    coalesce(adjustments.adjustment_count, 0) as adjustment_count,
    coalesce(adjustments.adjustments_subtotal, 0) as adjustments_total,
    coalesce(lines.lines_subtotal, 0) + coalesce(adjustments.adjustments_subtotal, 0)
      as net_lines_total,
    invoices.invoice_id is not null as is_listed,
    lines.invoice_id is not null as is_loaded
  from invoices
  full outer join lines on lines.invoice_id = invoices.invoice_id
  left join adjustments
    on adjustments.invoice_id = coalesce(invoices.invoice_id, lines.invoice_id)
)

select
  *,
  case
    when not is_loaded then 'not_loaded'
    when not is_listed then 'not_listed'
    when abs(difference) <= tolerance then 'reconciled'
    else 'mismatch'
  end as status
from joined
