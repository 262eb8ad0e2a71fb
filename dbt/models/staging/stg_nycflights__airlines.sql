with

source as (

    select * from {{ source('raw', 'airlines') }}

),

renamed as (

    select
        carrier,
        name as airline_name,
        _load_id,
        _loaded_at

    from source

)

select * from renamed
