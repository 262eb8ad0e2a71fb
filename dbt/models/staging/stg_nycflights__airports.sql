with

source as (

    select * from {{ source('raw', 'airports') }}

),

renamed as (

    select
        faa,
        name as airport_name,
        lat,
        lon,
        alt,
        tz as utc_offset_hours,
        dst,
        tzone,
        _load_id,
        _loaded_at

    from source

)

select * from renamed
