with

source as (

    select * from {{ source('raw', 'planes') }}

),

renamed as (

    select
        tailnum,
        year as year_built,
        type as aircraft_type,
        manufacturer,
        model,
        engines,
        seats,
        speed,
        engine as engine_type,
        _load_id,
        _loaded_at

    from source

)

select * from renamed
